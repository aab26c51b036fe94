// `selfsup preview`: look at what an augmentation recipe does to a dataset before training on
// it. Writes a PNG grid: each row is one image followed by its augmented views, made by the same
// Loader and random streams the trainer uses (epoch 0, samples in dataset order).
//
//   selfsup preview --dataset fashion-mnist --augment simclr --count 8 --views 4 --out views.png
#include <iostream>
#include <string>
#include <vector>

#include "ssl/data/augment.h"
#include "ssl/data/dataset.h"
#include "ssl/data/loader.h"
#include "ssl/data/png.h"
#include "ssl/data/subset.h"
#include "tools/cli/command.h"
#if __has_include("tools/cli/TEMP_recipes_stub.h")
#include "tools/cli/TEMP_recipes_stub.h"  // until augment.h declares make_recipes
#endif

namespace selfsup::cli {

namespace {

struct PreviewArgs {
  std::string dataset = "fashion-mnist";
  std::string split = "train";
  std::string data_dir;
  std::string augment;
  int64_t count = 8;
  int64_t views = 4;
  uint64_t seed = 0;
  std::string out = "views.png";
  data::FolderOptions folder;
};

// `none` shows the images unchanged: views that are null are the identity in the Loader.
data::ViewRecipes identity_recipes(int64_t image_size, int64_t num_views) {
  data::ViewRecipes r;
  r.name = "none";
  r.views.assign(static_cast<size_t>(num_views), nullptr);
  r.view_sizes.assign(static_cast<size_t>(num_views), image_size);
  return r;
}

void run_preview(const PreviewArgs& a) {
  SELFSUP_CHECK(a.count > 0 && a.views > 0, "preview: --count and --views must be positive");
  data::Dataset ds =
      data::first_n(data::load_dataset(a.dataset, a.split, a.data_dir, a.folder), a.count);
  const data::ViewRecipes recipes =
      a.augment == "none" ? identity_recipes(ds.height(), a.views)
                          : data::make_recipes(a.augment, ds.channels(), ds.height(), a.views);
  data::LoaderOptions opts;
  opts.batch_size = ds.size();
  opts.num_workers = 0;
  opts.shuffle = false;
  opts.drop_last = false;
  opts.seed = a.seed;
  data::Loader loader(ds, recipes, opts);
  loader.start_epoch(0);
  const data::Batch batch = *loader.next();
  std::vector<std::vector<data::Image>> rows;
  for (int64_t r = 0; r < batch.size(); ++r) {
    rows.push_back({ds.image(r)});
    for (const Tensor& view : batch.views)
      rows.back().push_back(data::batch_image(view, r));
  }
  data::write_png(a.out, data::make_grid(rows));
  std::cout << "preview: wrote " << a.out << ": " << batch.size() << " rows of one " << ds.name
            << " image and " << batch.views.size() << " views of '" << recipes.name << "' (seed "
            << a.seed << ")\n";
}

void setup_preview(CLI::App& sub) {
  auto args = std::make_shared<PreviewArgs>();
  sub.add_option("--dataset", args->dataset,
                 "fashion-mnist, mnist, cifar10, cifar100 or folder:PATH")
      ->capture_default_str();
  sub.add_option("--split", args->split, "train or test")->capture_default_str();
  sub.add_option("--data-dir", args->data_dir, "Folder with the dataset's files");
  sub.add_option("--augment", args->augment, "Augmentation recipe (none shows the images)")
      ->required();
  sub.add_option("--count", args->count, "Images (rows)")->capture_default_str();
  sub.add_option("--views", args->views, "Views per image")->capture_default_str();
  sub.add_option("--seed", args->seed, "Seed of the augmentations")->capture_default_str();
  sub.add_option("--out", args->out, "PNG file to write")->capture_default_str();
  sub.add_option("--image-size", args->folder.image_size, "Image side for folder: datasets")
      ->capture_default_str();
  sub.add_option("--channels", args->folder.channels, "1 or 3, for folder: datasets")
      ->capture_default_str();
  sub.callback([args] { run_preview(*args); });
}

const Registrar kRegistrar("preview", "Write a PNG grid of images and their augmented views",
                           &setup_preview);

}  // namespace

}  // namespace selfsup::cli
