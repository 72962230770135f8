#pragma once
// The whole data layer: image I/O, transforms, data sets and the batch loader.
#include "disco/data/random.hpp"
#include "disco/data/image.hpp"
#include "disco/data/transforms.hpp"
#include "disco/data/dataset.hpp"
#include "disco/data/celeba.hpp"
#include "disco/data/synthetic_faces.hpp"
#include "disco/data/loader.hpp"
