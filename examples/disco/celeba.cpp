// `disco split-celeba`: CelebA attributes -> trainA/trainB/testA/testB list files with
// the official rules (glasses, beard, mouth, smile, custom:<Attribute>).
#include <iostream>

#include "common.hpp"

namespace disco::cli {

void add_split_celeba(CLI::App& app) {
  struct Opts {
    std::string images, attributes, config, out;
    size_t num_test = 64;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("split-celeba", "split CelebA into domains A/B by attribute (official rules)");
  cmd->add_option("--images", o->images, "img_align_celeba folder")->required();
  cmd->add_option("--attributes", o->attributes, "list_attr_celeba.txt")->required();
  cmd->add_option("--config", o->config, "glasses | beard | mouth | smile | custom:<Attribute_Name>")->required();
  cmd->add_option("--out", o->out, "output folder for trainA.txt trainB.txt testA.txt testB.txt")->required();
  cmd->add_option("--num-test", o->num_test, "test images per domain (the first ones)")->capture_default_str();
  cmd->callback([o] {
    DISCO_CHECK(fs::is_directory(o->images), "--images: folder not found: '", o->images, "'");
    data::CelebAAttributes attrs = data::parse_celeba_attributes(o->attributes);
    data::DomainSplit s = data::split_celeba(attrs, o->config, o->num_test);
    ensure_dir(o->out);
    data::write_split(s, o->images, o->out);
    std::cout << "split '" << o->config << "': A " << s.train_a.size() << " train + " << s.test_a.size()
              << " test, B " << s.train_b.size() << " train + " << s.test_b.size() << " test -> " << o->out << "\n";
  });
}

}  // namespace disco::cli
